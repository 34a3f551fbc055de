"""One APIRouter per resource the server offers."""
