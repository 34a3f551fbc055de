"""One typed settings object for every job and the server.

Values come from (lowest to highest priority) the defaults below, ``GALSEARCH_*`` environment variables
(``DATABASE_URL`` is also read unprefixed, as every PaaS and docker-compose set it), and CLI flags, which
the CLI passes in as keyword overrides.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GALSEARCH_", extra="ignore")

    workdir: Path = Path("work/demo")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("GALSEARCH_DATABASE_URL", "DATABASE_URL")
    )
    host: str = "127.0.0.1"
    port: int = 8000

    # training
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    epochs: int = 12
    batch_size: int = 256
    learning_rate: float = 2e-3
    temperature: float = 0.2
    input_size: int = 32  # the encoder sees cutouts resampled to this size (CPU throughput; see embedder/model.py)
    width: int = 32
    workers: int = 2

    # serving
    page_size: int = 48
    max_k: int = 200

    def resolved_database_url(self) -> str:
        """SQLite inside the workdir unless a server database is configured."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.workdir / 'galsearch.db').resolve()}"
