"""The CLI's settings: every stage's own config type, composed into one object.

Each stage owns the type of its knobs (``embedder.config.TrainConfig`` and ``EmbedConfig``,
``index_builder.index.IndexConfig``, ``app.settings.ServerSettings``); this class only extends them all, so a knob
is declared once and keeps one name as a field, a ``GALSEARCH_*`` environment variable and a CLI flag. Values
come from (lowest to highest priority) the defaults, the environment, and the flags the CLI passes in.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from app.settings import ServerSettings
from embedder.config import EmbedConfig, TrainConfig

Config = TypeVar("Config", bound=BaseModel)


class Settings(ServerSettings, TrainConfig, EmbedConfig):
    workers: int = 2  # processes that draw the demo survey

    def part(self, config: type[Config]) -> Config:
        """The knobs of one stage's ``config`` type, as an instance of it (what the stage is handed)."""
        return config.model_validate(self.model_dump(include=set(config.model_fields)))
