"""Alembic environment of the warehouse: revisions in ``versions/``, consumer views in ``views``.

Run through ``pipelines.db`` (``seedfunnel db upgrade``); no alembic.ini is needed.
"""
