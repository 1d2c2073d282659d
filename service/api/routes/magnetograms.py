"""``/v1/magnetograms``: the feed of synthetic magnetograms."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from service.api import products
from service.api.deps import BaseUrlDep, SessionDep, StoreDep
from service.api.files import IMMUTABLE, etag_matches, serve_object
from service.api.layers import layers_of, render_layer_png
from service.api.params import (
    MAX_TIME_CHARS,
    TIME_RANGE,
    CursorParam,
    ModelParam,
    Order,
    ProductId,
    parse_time,
)
from service.api.quicklook import render_input_png
from service.api.schemas import ErrorBody, Magnetogram, MagnetogramPage
from service.errors import FrameRejected
from service.storage import ObjectNotFound

router = APIRouter(prefix="/v1/magnetograms", tags=["magnetograms"])

MAX_LIMIT = 1000
DATE_TIME = {"format": "date-time"}  # in the OpenAPI: clients and fuzzers know what to send
NOT_FOUND = {404: {"model": ErrorBody}}


LATEST_HEADERS = {"Cache-Control": "no-cache"}  # revalidate every time: the ETag makes it a 304


def _product_or_404(session: SessionDep, product_id: int) -> products.Product:
    product = products.get_product(session, product_id)
    if product is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no magnetogram with id {product_id}")
    return product


@router.get(
    "/latest", response_class=Response,
    responses={200: {"model": Magnetogram, "description": "The newest product (ETag; 304 on If-None-Match)"},
               304: {"description": "Unchanged since the ETag sent"}, **NOT_FOUND},
)
async def latest(request: Request, model: ModelParam = None) -> Response:
    """The newest synthetic magnetogram, with links to its FITS and PNG.

    Served from memory (:mod:`service.api.latest`); its ETag changes when the
    newest product or its verification does, so pollers can send ``If-None-Match``.
    """
    answer = await request.app.state.latest.answer(model)
    if answer.status != 200:
        return Response(answer.body, status_code=answer.status, media_type="application/json",
                        headers=LATEST_HEADERS)
    headers = {**LATEST_HEADERS, "ETag": answer.etag}
    if etag_matches(request, answer.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(answer.body, media_type="application/json", headers=headers)


@router.get("", response_model=MagnetogramPage, responses={400: {"model": ErrorBody}})
def search(
    request: Request,
    session: SessionDep,
    base: BaseUrlDep,
    start: Annotated[str | None, Query(max_length=MAX_TIME_CHARS, json_schema_extra=DATE_TIME,
                                       description=f"ISO 8601, inclusive ({TIME_RANGE})")] = None,
    end: Annotated[str | None, Query(max_length=MAX_TIME_CHARS, json_schema_extra=DATE_TIME,
                                     description=f"ISO 8601, exclusive ({TIME_RANGE})")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorParam = None,
    order: Annotated[Order, Query()] = "asc",
    model: ModelParam = None,
) -> MagnetogramPage:
    """Products observed in ``[start, end)``, in time order, one page at a time."""
    t0, t1 = parse_time("start", start), parse_time("end", end)
    if t0 is not None and t1 is not None and t1 <= t0:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "end must be after start")
    rows, next_cursor = products.list_products(  # a bad cursor raises BadCursor: 400
        session, start=t0, end=t1, limit=limit, order=order, cursor=cursor, model_version=model
    )
    next_url = None
    if next_cursor:
        params = {k: v for k, v in request.query_params.items() if k != "cursor"}
        next_url = f"{base}/v1/magnetograms?{urlencode({**params, 'cursor': next_cursor})}"
    return MagnetogramPage(
        items=[products.summary(p, base) for p in rows],
        count=len(rows),
        next_cursor=next_cursor,
        next_url=next_url,
    )


@router.get("/{product_id:id64}", response_model=Magnetogram, responses=NOT_FOUND)
def get_one(product_id: ProductId, session: SessionDep, store: StoreDep, base: BaseUrlDep) -> Magnetogram:
    """Metadata, provenance (model kind, prior), layers, quality flags and verification scores of one product."""
    product = _product_or_404(session, product_id)
    return products.detail(session, product, base, layers_of(store, product.fits_uri, product.fits_sha256))


@router.get(
    "/{product_id:id64}.fits",
    response_class=Response,
    responses={200: {"content": {"application/fits": {}}}, 304: {}, 307: {}, **NOT_FOUND},
)
def get_fits(product_id: ProductId, request: Request, session: SessionDep, store: StoreDep) -> Response:
    """The FITS product (Gauss); a redirect to a presigned URL when the store is S3."""
    product = _product_or_404(session, product_id)
    return serve_object(request, store, product.fits_uri, product.fits_sha256, "application/fits")


@router.get(
    "/{product_id:id64}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 304: {}, 307: {}, **NOT_FOUND},
)
def get_png(product_id: ProductId, request: Request, session: SessionDep, store: StoreDep) -> Response:
    """The quick-look PNG (colorbar in Gauss)."""
    product = _product_or_404(session, product_id)
    if not product.png_uri:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"magnetogram {product_id} has no PNG")
    return serve_object(request, store, product.png_uri, product.png_sha256, "image/png")


@router.get(
    "/{product_id:id64}/input.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 304: {}, **NOT_FOUND},
)
async def get_input_png(
    product_id: ProductId, request: Request, session: SessionDep, store: StoreDep
) -> Response:
    """Quick-look of the H-alpha the model saw (the stored raw frame, preprocessed again)."""
    product = await run_in_threadpool(_product_or_404, session, product_id)
    frame = product.input_frame
    if frame is None or not frame.raw_uri:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the input frame of this product is not stored")
    etag = f'"{frame.sha256}-p{product.preprocess_version}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
    if etag_matches(request, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    try:
        raw = await run_in_threadpool(store.get, store.key_for(frame.raw_uri))
        png = await run_in_threadpool(render_input_png, raw, frame.source, frame.filename, etag)
    except (ObjectNotFound, ValueError):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the input frame is missing from the store") from None
    except FrameRejected as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"input frame unreadable: {exc}") from None
    return Response(png, media_type="image/png", headers=headers)


@router.get(
    "/{product_id:id64}/layers/{layer}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 304: {}, **NOT_FOUND},
)
async def get_layer_png(
    product_id: ProductId, layer: Literal["field", "sigma", "confidence"], request: Request,
    session: SessionDep, store: StoreDep,
) -> Response:
    """One layer of the product as a 1024x1024 PNG on its grid, north at the top, transparent off the disk.

    ``field``: the quick-look's colours (+-200 G); ``sigma``: grey level = SIGMA in Gauss
    (saturating at 255); ``confidence``: grey level / 255 = CONFIDENCE, the probability
    that the published sign is right where |B| > 20 G. 404 for ``sigma`` and
    ``confidence`` when the product has no uncertainty layers (a model without a
    calibration). Exact values are the FITS product's ``SIGMA`` and ``CONFIDENCE`` HDUs.
    """
    product = await run_in_threadpool(_product_or_404, session, product_id)
    etag = f'"{product.fits_sha256}-{layer}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
    if etag_matches(request, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    try:
        data = await run_in_threadpool(store.get, store.key_for(product.fits_uri))
    except (ObjectNotFound, ValueError):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the product file is missing from the store") from None
    png = await run_in_threadpool(render_layer_png, data, layer, product.fits_sha256)
    if png is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"magnetogram {product_id} has no {layer.upper()} layer "
                            "(made by a model without an uncertainty calibration)")
    return Response(png, media_type="image/png", headers=headers)
