"""Product queries and their JSON form (kept out of the routes so those stay thin).

Products are ordered by ``(obs_time, id)``; pages use keyset pagination with an
opaque cursor holding the last row's key, so a page never skips or repeats a
product even while new ones arrive.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Literal

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, joinedload

from service.api.schemas import Magnetogram, MagnetogramSummary, Provenance
from service.db import InputFrame, ModelVersion, Product

Order = Literal["asc", "desc"]


class BadCursor(ValueError):
    """A cursor that this API did not hand out (or for another ordering)."""


def encode_cursor(product: Product, order: Order) -> str:
    raw = json.dumps([product.obs_time.isoformat(), product.id, order]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, order: Order) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        t, pid, cursor_order = json.loads(base64.urlsafe_b64decode(padded.encode()))
        key = (datetime.fromisoformat(t), int(pid))
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise BadCursor("cursor: not a cursor this API handed out") from None
    if cursor_order != order:
        raise BadCursor(f"cursor: made for order={cursor_order}, not order={order}")
    return key


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
        t, pid = decode_cursor(cursor, order)
        if order == "asc":
            q = q.where(or_(Product.obs_time > t, and_(Product.obs_time == t, Product.id > pid)))
        else:
            q = q.where(or_(Product.obs_time < t, and_(Product.obs_time == t, Product.id < pid)))
    if order == "asc":
        q = q.order_by(Product.obs_time.asc(), Product.id.asc())
    else:
        q = q.order_by(Product.obs_time.desc(), Product.id.desc())
    rows = list(session.scalars(q.limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1], order) if len(rows) > limit else None
    return rows[:limit], next_cursor


def latest_product(session: Session, model_version: str | None = None) -> Product | None:
    """The product with the newest observation time (newest row on a tie)."""
    rows, _ = list_products(
        session, start=None, end=None, limit=1, order="desc", model_version=model_version
    )
    return rows[0] if rows else None


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
