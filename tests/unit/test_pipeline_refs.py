"""Run references and checkpoint keys (pure functions of the pipeline)."""

from include.mlops.pipeline import RunRef, checkpoint_fingerprint


def test_distinct_run_ids_get_distinct_folders():
    ids = ["manual__a:b", "manual__a_b", "manual__a.b", "../../etc", "..", "x" * 300]
    folders = [RunRef("d", r).safe_run_id for r in ids]
    assert len(set(folders)) == len(ids)
    for folder in folders:
        assert "/" not in folder and ".." not in folder and len(folder) <= 91


def test_checkpoints_resume_only_into_the_same_data_and_shape():
    plan = {"sha256": "a" * 64}
    params = {"batch_size": 512, "learning_rate": 0.002, "horovod_np": 2}
    same = checkpoint_fingerprint(plan, dict(params))
    assert checkpoint_fingerprint(plan, dict(params)) == same
    assert checkpoint_fingerprint({"sha256": "b" * 64}, params) != same
    assert checkpoint_fingerprint(plan, {**params, "horovod_np": 4}) != same
    assert checkpoint_fingerprint(plan, params, code="trainer:abc1234") != same
    forced = {**params, "force_retrain": True}
    assert len({checkpoint_fingerprint(plan, forced) for _ in range(3)} | {same}) == 4  # always fresh
