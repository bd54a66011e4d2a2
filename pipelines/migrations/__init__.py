"""Alembic environment of the warehouse: revisions in ``versions/`` (written with ``ddl``),
the consumer views' declaration in ``views``.

Run through ``pipelines.db`` (``seedfunnel db upgrade``); no alembic.ini is needed.
"""
