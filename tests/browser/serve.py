"""The app the browser tests drive: the real composition root with the panel installed, built
from the environment (AFTERSALES_DATABASE_URL, AFTERSALES_MEDIA_DIR) by uvicorn's --factory."""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app
from api.panel import install_panel
from tickets.settings import get_settings


def app() -> FastAPI:
    application = create_app(get_settings())
    install_panel(application)
    return application
