"""Product queries and their JSON form (kept out of the routes so those stay thin).

Products are ordered by ``(obs_time, id)``; pages use keyset pagination with an
opaque cursor holding the last row's key (:mod:`service.api.params`), so a page
never skips or repeats a product even while new ones arrive.

Links in the JSON are built on ``base``: ``SYNMAG_PUBLIC_URL`` when set, else
empty (links relative to the API root, e.g. ``/v1/magnetograms/7.fits``); never
from the request, whose ``Host`` header the client controls.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, joinedload

from service.api.params import Order, decode_cursor, encode_cursor
from service.api.schemas import Magnetogram, MagnetogramSummary, Provenance
from service.db import InputFrame, ModelVersion, Product


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


def summary(product: Product, base: str) -> MagnetogramSummary:
    root = f"{base}/v1/magnetograms/{product.id}"
    return MagnetogramSummary(
        id=product.id,
        obs_time=product.obs_time,
        site=product.site,
        model_version=product.model_version,
        created=product.created_at,
        fits_url=f"{root}.fits",
        png_url=f"{root}.png" if product.png_uri else None,
        input_png_url=f"{root}/input.png" if has_input_frame(product) else None,
        detail_url=root,
        fits_sha256=product.fits_sha256,
        verified=bool(product.verification and product.verification.get("status") == "scored"),
    )


def detail(session: Session, product: Product, base: str) -> Magnetogram:
    frame: InputFrame | None = product.input_frame
    model = session.get(ModelVersion, product.model_version)
    before, after = neighbours(session, product)
    provenance = Provenance(
        input_file=frame.filename if frame else None,
        input_url=frame.url if frame else None,
        input_sha256=frame.sha256 if frame else None,
        input_obs_time=frame.obs_time if frame else None,
        site=product.site,
        model_version=product.model_version,
        model_sha256=model.sha256 if model else None,
        preprocess_version=product.preprocess_version,
        polarity_sign=product.polarity_sign,
        created=product.created_at,
    )
    return Magnetogram(
        **summary(product, base).model_dump(),
        provenance=provenance,
        quality=product.quality,
        verification=product.verification,
        timings=product.timings,
        previous_id=before,
        next_id=after,
    )
