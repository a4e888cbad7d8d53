"""Development harnesses, never shipped in an image: the embedded stack (make demo, make airflow), the
``make up`` stack, a PostgreSQL server of this machine's, the stack's secrets file, the synthetic data generator
and the ``airflow`` CLI wrapper for SQLite.
"""
