"""Operations tooling for seedfunnel: not the library, not DAGs.

- ``airflow_local``: runs the DAGs on this machine with ``dag.test()`` (``seedfunnel demo``,
  tests/test_dags.py);
- ``cluster``: the production profile on one machine, Airflow 3 with CeleryExecutor, PostgreSQL
  and Redis (``seedfunnel cluster-demo``, tests/test_cluster.py).

It lives beside the DAG files so a checkout carries it, but ``dags/.airflowignore`` keeps Airflow's
DAG processor out of this folder. It is installed as the top-level package ``seedfunnel_ops``
(pyproject.toml); it imports ``pipelines``, while ``pipelines`` imports it only inside the CLI's
``demo`` and ``cluster-demo`` commands (tests/test_layout.py).
"""
