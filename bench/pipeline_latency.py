"""Per-frame latency of the operational pipeline: archive listing -> committed product.

A replay archive on loopback serves real val frames (two sites a minute, as
often happens); ``process_minute`` runs on each minute against a SQLite
database and a file store, exactly as ``synmag serve`` does. Reported: the
median and max of the whole (listing to committed row) and of each stage
(download, decode and gate summed over the minute's candidates; preprocess,
inference, write for the chosen frame), plus the ONNX Runtime providers.

The model is the bundled production model when ``models/`` has one, else an
untrained generator of the paper's size (same compute as a trained one),
exported with torch when the train extra is installed. Frames are rendered by
the replay before timing, so ``download`` measures the transfer only.
Run on the CPU here; set ``SYNMAG_PROVIDERS`` to time CUDA/TensorRT on a GPU host.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

MINUTES = 5
REPO = Path(__file__).resolve().parents[1]


def _model(tmp: Path) -> Path | None:
    """Path of an ONNX generator to time (the bundled H-alpha-only one, else a paper-size untrained export)."""
    bundled = [p for p in sorted((REPO / "models").glob("*.onnx")) if "nowcast" not in p.name]
    if bundled:
        return bundled[-1]
    try:
        import torch

        from service.science.preprocess import PREPROCESS_VERSION
        from training.export import export_onnx
        from training.model import UNetGenerator, init_weights
    except ImportError:
        return None
    torch.manual_seed(0)
    generator = UNetGenerator()  # the paper's defaults: ngf 64, depth 8
    init_weights(generator)
    meta = {"config": json.dumps({"name": "bench-untrained"}), "train_data_sha256": "untrained",
            "version": "bench-untrained", "preprocess_version": PREPROCESS_VERSION}
    return export_onnx(generator, tmp / "bench.onnx", meta)


def run() -> dict:
    from service.devtools.replay import ReplayArchive, serve_in_thread
    from service.pipeline.minute import process_minute
    from service.pipeline.wiring import open_pipeline
    from service.settings import Settings

    data = Path(os.environ.get("DATA_DIR", REPO.parent / "shared/data/ha2mag")) / "val"
    if not data.is_dir():
        return {"skipped": f"no val data at {data}"}
    with tempfile.TemporaryDirectory(prefix="synmag-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model = _model(tmp)
        if model is None:
            return {"skipped": "no bundled model and no torch to export one"}
        source = tmp / "val"
        source.mkdir()
        for path in sorted(data.glob("*_halpha.webp"))[:MINUTES]:
            (source / path.name).symlink_to(path)
        replay = ReplayArchive(source, cadence_s=3600, rewind_minutes=MINUTES + 5, backlog=MINUTES - 1, sites="BL")
        server, url = serve_in_thread(replay)
        settings = Settings(
            database_url=f"sqlite:///{tmp}/db.sqlite", store_url=f"file://{tmp}/store", gong_base_url=url,
            model=str(model), model_cache_dir=tmp / "cache", bundled_model_dir=tmp / "none",
            providers=os.environ.get("SYNMAG_PROVIDERS", "CPUExecutionProvider"),
        )
        pipeline = open_pipeline(settings)
        ctx, archive, runtime = pipeline.ctx, pipeline.ctx.sources["gong"], pipeline.runtime
        for frame in replay.published():  # render the frames now: time transfers, not the replay
            replay.frame_bytes(frame)
        try:
            rows = []
            minutes = sorted({f.obs_time.replace(second=0) for f in replay.published()}, reverse=True)
            for minute in minutes:
                t0 = time.perf_counter()
                now = datetime.now(UTC)
                listed = archive.list_recent(now, now - timedelta(hours=1))
                t_list = time.perf_counter() - t0
                out = process_minute(minute, ctx, [f for f in listed if f.minute == minute])
                total = time.perf_counter() - t0
                if out.outcome != "product":
                    raise RuntimeError(f"minute {minute}: {out.outcome} {out.detail}")
                rows.append({"list": t_list, **out.timings, "total": total})
        finally:
            pipeline.close()
            server.shutdown()
            server.server_close()
    result: dict = {
        "frames": len(rows),
        "candidates_per_minute": len(replay.queues),
        "model": model.name,
        "providers": ",".join(runtime.current.providers) if runtime.current else None,
    }
    for key in ("list", "download", "decode", "gate", "preprocess", "inference", "write", "total"):
        values = [r.get(key, 0.0) for r in rows]
        result[f"{key}_median_s"] = round(statistics.median(values), 3)
        result[f"{key}_max_s"] = round(max(values), 3)
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
