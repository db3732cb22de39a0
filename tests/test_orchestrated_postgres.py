"""The PostgreSQL-backed team server the orchestrated-run tests use is a real one."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.postgres_fixture import PostgresCluster
    from tests.server_fixtures import MlflowServer


def test_mlflow_server_stores_runs_in_postgres(postgres: PostgresCluster, pg_mlflow_server: MlflowServer) -> None:
    import psycopg

    client = pg_mlflow_server.client
    experiment_id = client.create_experiment("pg-check")
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "where", "postgres")
    with psycopg.connect(postgres.uri()) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT value FROM params WHERE run_uuid = %s AND key = 'where'", (run.info.run_id,))
        assert cursor.fetchall() == [("postgres",)]
    assert postgres.user in (None, "nobody")
