"""`python -m generator relay`: the config and environment in, a running relay out."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from generator.audiences_config import DEFAULT_INTEGRATION_KEY_ENV
from generator.config_loader import load_config
from generator.errors import GeneratorError
from generator.regions import track_events_url
from generator.relay.app import RelaySettings, create_app
from generator.relay.audience_delivery import AudienceDelivery
from generator.relay.client_faults import ClientFaults
from generator.relay.delivery import track_destination
from generator.relay.engine import DeliverySettings
from generator.relay.late_outbox import LateOutbox
from generator.relay.metadata import app_base_url
from generator.relay.metadata_delivery import MetadataDelivery
from generator.relay.outbox import Outbox, SqliteOutbox
from generator.relay.server import serve


def run_relay(  # noqa: PLR0917  (the command's options, one to one)
    config_path: Path,
    host: str,
    port: int,
    db: str,
    pendo_url: str | None,
    concurrency: int,
    *,
    private_details: bool = False,
    prune_every_seconds: float = 600.0,
    client_timeout_seconds: float = 10.0,
    metadata_url: str | None = None,
    max_rate: float = 50.0,
    dead_letter_days: float = 14.0,
) -> int:
    """Serve until interrupted; GeneratorError (StorageError for the outbox) when it cannot start."""
    config = load_config(config_path)
    needed = ["PENDO_TRACK_EVENT_SECRET", "RELAY_SHARED_SECRET"]
    key_env = config.metadata.secret_env if config.metadata is not None else DEFAULT_INTEGRATION_KEY_ENV
    if config.metadata is not None or config.audiences is not None:
        needed.append(key_env)  # the Integration Key: [metadata] secret_env, which [audiences] shares
    missing = [name for name in needed if not os.environ.get(name)]
    if missing:
        raise GeneratorError(f"set {' and '.join(missing)} in the environment; the relay will not run without them")
    metadata = (
        MetadataDelivery(
            config.metadata,
            metadata_url or app_base_url(config.pendo.region),
            os.environ[config.metadata.secret_env],
            concurrency,
        )
        if config.metadata is not None
        else None
    )
    audiences = (
        AudienceDelivery(
            config.audiences,
            (metadata_url or app_base_url(config.pendo.region)).rstrip("/"),
            os.environ[key_env],
            concurrency,
        )
        if config.audiences is not None
        else None
    )
    destination = track_destination(
        pendo_url or track_events_url(config.pendo.region), os.environ["PENDO_TRACK_EVENT_SECRET"], concurrency
    )
    settings = RelaySettings(
        os.environ["RELAY_SHARED_SECRET"],
        [destination],
        visitor_rule=config.on_load.visitor_id,
        subscribe=config.webhook.subscribe if config.webhook else RelaySettings.subscribe,
        private_details=private_details,
        prune_every_seconds=prune_every_seconds,
        client_timeout_seconds=client_timeout_seconds,
        metadata=metadata,
        audiences=audiences,
        delivery=DeliverySettings(max_rate=max_rate),
        dead_letter_days=dead_letter_days,
    )
    opener, where = outbox_opener(db)
    # A full disk or a database server that is down is waited for (not ready meanwhile); anything else exits.
    outbox = LateOutbox(opener, where)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    also = f" and {metadata.base_url}/api/v1/metadata" if metadata is not None else ""
    also += f" and {audiences.base_url}/api/v1/segment" if audiences is not None else ""
    print(f"relay on http://{host}:{port}/ → {destination.url}{also} (outbox {where})", flush=True)
    if outbox.store is None:
        print(f"not ready: {outbox.reason}; trying again until it works (see /readyz)", flush=True)
    faults = ClientFaults()
    serve(create_app(outbox, settings, faults), host, port, header_seconds=client_timeout_seconds, faults=faults)
    return 0


def outbox_opener(db: str) -> tuple[Callable[[], Outbox], str]:
    """How to open the outbox --db names, and where it is for messages (a URL without its password)."""
    if not db.startswith(("postgresql://", "postgres://")):
        return partial(SqliteOutbox, Path(db)), db
    try:
        from generator.relay.pg_outbox import PostgresOutbox, describe  # noqa: PLC0415  (psycopg is optional)
    except ImportError:
        raise GeneratorError(
            "--db is a PostgreSQL URL but psycopg is not installed; pip install 'segment-pendo[postgres]'"
        ) from None
    return partial(PostgresOutbox, db), describe(db)
