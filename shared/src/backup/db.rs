//! `backup db`: a custom-format `pg_dump` of the Houston (or one Airflow) database,
//! streamed to a local file with byte progress and checked with `pg_restore -l`.
