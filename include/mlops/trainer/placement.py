"""Where a rank runs: its GPU (one per local rank), its CPU threads and cores, and what carries its allreduce."""

from __future__ import annotations

import os


def configure_threads(threads: int, local_size: int, local_rank: int, bind_cores: bool) -> int:
    import tensorflow as tf

    if threads <= 0:
        threads = max(1, (os.cpu_count() or 1) // max(1, local_size))
    if bind_cores:
        # Each rank on its own cores (as a pod's CPU limit would do): ranks stop competing
        # with each other's TF, tf.data and Horovod threads.
        allowed = sorted(os.sched_getaffinity(0))
        mask = {allowed[(local_rank * threads + i) % len(allowed)] for i in range(threads)}
        # Every thread of the process: Horovod's background thread and TF's pools already run.
        for tid in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(tid), mask)
            except OSError:  # the thread ended meanwhile
                pass
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    return threads


def pin_device(local_rank: int) -> str:
    """One GPU per rank (the GPU of its local rank); CPU when the node has none."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "/CPU:0"
    gpu = gpus[local_rank % len(gpus)]
    tf.config.set_visible_devices(gpu, "GPU")
    tf.config.experimental.set_memory_growth(gpu, True)
    return f"/GPU:{local_rank % len(gpus)}"


def collective(device: str) -> str:
    """What carries the allreduce: NCCL between GPUs when built with it, else Gloo or MPI."""
    import horovod.tensorflow as hvd

    if device.startswith("/GPU") and hvd.nccl_built():
        return "NCCL"
    return "MPI" if hvd.mpi_enabled() and not hvd.gloo_enabled() else "Gloo"


def thread_affinities() -> list[set[int]]:
    out = []
    for tid in os.listdir("/proc/self/task"):
        try:
            out.append(os.sched_getaffinity(int(tid)))
        except OSError:
            pass
    return out
