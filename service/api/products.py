"""Product queries and their JSON form (kept out of the routes so those stay thin).

Products are ordered by ``(obs_time, id)``; pages use keyset pagination with an
opaque cursor holding the last row's key (:mod:`service.api.params`), so a page
never skips or repeats a product even while new ones arrive.

Links in the JSON are built on ``base``: ``SYNMAG_PUBLIC_URL`` when set, else
empty (links relative to the API root, e.g. ``/v1/magnetograms/7.fits``); never
from the request, whose ``Host`` header the client controls.

:func:`product_record` is the one JSON form of a product row: ``synmag products --json``
prints it and the API's product JSON is built from it, so the two cannot disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, joinedload

from service.api.params import Order, decode_cursor, encode_cursor
from service.api.schemas import Layers, Magnetogram, MagnetogramSummary, PriorInfo, Provenance
from service.db import ModelVersion, Product


def iso(t: datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z``."""
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z") if t else None


def product_record(product: Product) -> dict[str, Any]:
    """A product row (its input frame loaded) as JSON-ready data, the CLI's and the API's.

    Keys: ``id``, ``obs_time``, ``obs_minute``, ``source``, ``site``, ``input_file``,
    ``input_url``, ``input_sha256``, ``input_obs_time``, ``model_version``, ``model_kind``
    (``halpha``/``nowcast``; null before migration 0004), ``preprocess_version``,
    ``polarity_sign``, ``prior`` (``{obs_time, age_h, source, sha256}`` or null),
    ``prior_note`` (why there was no prior), ``prior_line`` (one line for people:
    ``service.inference.process.prior_line``), ``fits_uri``, ``png_uri``, ``fits_sha256``,
    ``png_sha256``, ``created_at``. Times are ISO 8601 UTC with a ``Z``.
    """
    from service.inference.process import prior_line

    frame = product.input_frame
    prior = None
    if product.prior_obs is not None:
        prior = {"obs_time": iso(product.prior_obs), "age_h": product.prior_age_h,
                 "source": product.prior_source, "sha256": product.prior_sha256}
    return {
        "id": product.id,
        "obs_time": iso(product.obs_time),
        "obs_minute": iso(product.obs_minute),
        "source": product.source,
        "site": product.site,
        "input_file": frame.filename if frame else None,
        "input_url": frame.url if frame else None,
        "input_sha256": frame.sha256 if frame else None,
        "input_obs_time": iso(frame.obs_time) if frame else None,
        "model_version": product.model_version,
        "model_kind": product.model_kind,
        "preprocess_version": product.preprocess_version,
        "polarity_sign": product.polarity_sign,
        "prior": prior,
        "prior_note": product.prior_note,
        "prior_line": prior_line({"prior_obs": prior and prior["obs_time"], "prior_age_h": product.prior_age_h}),
        "fits_uri": product.fits_uri,
        "png_uri": product.png_uri,
        "fits_sha256": product.fits_sha256,
        "png_sha256": product.png_sha256,
        "created_at": iso(product.created_at),
    }


def list_products(
    session: Session,
    *,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    order: Order = "asc",
    cursor: str | None = None,
    model_version: str | None = None,
) -> tuple[list[Product], str | None]:
    """Products with ``start <= obs_time < end``, one page, and the next page's cursor."""
    q = select(Product)
    if start is not None:
        q = q.where(Product.obs_time >= start)
    if end is not None:
        q = q.where(Product.obs_time < end)
    if model_version is not None:
        q = q.where(Product.model_version == model_version)
    if cursor:
        t, pid = decode_cursor(cursor, order)  # BadCursor (400) for anything not ours
        if order == "asc":
            q = q.where(or_(Product.obs_time > t, and_(Product.obs_time == t, Product.id > pid)))
        else:
            q = q.where(or_(Product.obs_time < t, and_(Product.obs_time == t, Product.id < pid)))
    if order == "asc":
        q = q.order_by(Product.obs_time.asc(), Product.id.asc())
    else:
        q = q.order_by(Product.obs_time.desc(), Product.id.desc())
    rows = list(session.scalars(q.limit(limit + 1)))
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = encode_cursor(last.obs_time, last.id, order) if last is not None else None
    return rows[:limit], next_cursor


def latest_product(session: Session, model_version: str | None = None) -> Product | None:
    """The product with the newest observation time (newest row on a tie).

    Two indexed look-ups instead of a sort of the whole table: the newest
    ``obs_minute`` (indexed), then the few products of that minute. A product's
    ``obs_minute`` is its ``obs_time`` truncated to the minute (the pipeline's key),
    so the newest ``obs_time`` is always in the newest minute.
    """
    newest = select(Product.obs_minute)
    if model_version is not None:
        newest = newest.where(Product.model_version == model_version)
    minute = session.scalar(newest.order_by(Product.obs_minute.desc()).limit(1))
    if minute is None:
        return None
    q = select(Product).where(Product.obs_minute == minute)
    if model_version is not None:
        q = q.where(Product.model_version == model_version)
    return session.scalars(q.order_by(Product.obs_time.desc(), Product.id.desc()).limit(1)).first()


def get_product(session: Session, product_id: int) -> Product | None:
    return session.scalars(
        select(Product).options(joinedload(Product.input_frame)).where(Product.id == product_id)
    ).first()


def neighbours(session: Session, product: Product) -> tuple[int | None, int | None]:
    """Ids of the products just before and just after ``product`` in ``(obs_time, id)`` order."""
    t, pid = product.obs_time, product.id
    before = session.scalars(
        select(Product.id)
        .where(or_(Product.obs_time < t, and_(Product.obs_time == t, Product.id < pid)))
        .order_by(Product.obs_time.desc(), Product.id.desc())
        .limit(1)
    ).first()
    after = session.scalars(
        select(Product.id)
        .where(or_(Product.obs_time > t, and_(Product.obs_time == t, Product.id > pid)))
        .order_by(Product.obs_time.asc(), Product.id.asc())
        .limit(1)
    ).first()
    return before, after


def has_input_frame(product: Product) -> bool:
    frame = product.input_frame
    return frame is not None and bool(frame.raw_uri)


def summary(product: Product, base: str, record: dict[str, Any] | None = None) -> MagnetogramSummary:
    record = record or product_record(product)
    root = f"{base}/v1/magnetograms/{product.id}"
    return MagnetogramSummary(
        id=product.id,
        obs_time=product.obs_time,
        site=product.site,
        model_version=product.model_version,
        model_kind=record["model_kind"],
        prior=PriorInfo(**record["prior"]) if record["prior"] else None,
        prior_note=record["prior_note"],
        prior_line=record["prior_line"],
        created=product.created_at,
        fits_url=f"{root}.fits",
        png_url=f"{root}.png" if product.png_uri else None,
        input_png_url=f"{root}/input.png" if has_input_frame(product) else None,
        detail_url=root,
        fits_sha256=product.fits_sha256,
        verified=bool(product.verification and product.verification.get("status") == "scored"),
    )


def detail(session: Session, product: Product, base: str, layer_names: tuple[str, ...] = ()) -> Magnetogram:
    """The product's full JSON; ``layer_names``: the uncertainty layers its FITS holds
    (:func:`service.api.layers.layers_of`), linked under ``layers``."""
    record = product_record(product)
    model = session.get(ModelVersion, product.model_version)
    before, after = neighbours(session, product)
    provenance = Provenance(
        **{k: record[k] for k in ("input_file", "input_url", "input_sha256", "input_obs_time", "site",
                                  "model_version", "model_kind", "preprocess_version", "polarity_sign",
                                  "prior", "prior_note", "prior_line")},
        model_sha256=model.sha256 if model else None,
        created=product.created_at,
    )
    root = f"{base}/v1/magnetograms/{product.id}/layers"
    layers = Layers(field=f"{root}/field.png",
                    **{name: f"{root}/{name}.png" for name in layer_names})
    return Magnetogram(
        **summary(product, base, record).model_dump(),
        provenance=provenance,
        layers=layers,
        quality=product.quality,
        verification=product.verification,
        timings=product.timings,
        previous_id=before,
        next_id=after,
    )
