"""The server's settings: defaults, overridden by ``GALSEARCH_*`` environment variables, then by the caller.

``DATABASE_URL`` is also read unprefixed, as every PaaS and docker-compose set it. The CLI's settings
(``galsearch.settings``) extend this type with every job's knobs, so a name means the same everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from index_builder.index import IndexConfig
from survey.workdir import Workdir


class ServerSettings(IndexConfig, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GALSEARCH_", extra="ignore", populate_by_name=True)

    workdir: Path = Path("work/demo")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("GALSEARCH_DATABASE_URL", "DATABASE_URL")
    )
    host: str = "127.0.0.1"
    port: int = 8000
    # One log line per request costs a busy server about a twentieth of its CPU; errors are logged either way.
    access_log: bool = False
    page_size: int = 48
    max_k: int = 200
    retrain_every: int = 10  # refit a researcher's anomaly ranking after this many new ratings
    auth_token: str | None = Field(  # set: only holders of this token may write (tags, ratings); reads stay open
        default=None, validation_alias=AliasChoices("GALSEARCH_AUTH", "GALSEARCH_AUTH_TOKEN"))
    max_request_bytes: int = 1 << 20  # larger request bodies are refused (413)
    anomaly_method: Literal["classifier", "gaussian_process", "neighbour_score"] = "classifier"
    # Serve look-alike searches from the index's shards (`galsearch shard`) as Ray Serve deployments: "local"
    # starts a Ray instance here, else the address of a running cluster ("auto", "ray://head:10001").
    index_shards: str | None = None

    def resolved_database_url(self) -> str:
        """SQLite inside the workdir unless a server database is configured."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Workdir(self.workdir).database.resolve()}"
