"""Airflow glue: trainer steps, task links, run notes and strict run conf. The DAG files import from here and from the stages."""
