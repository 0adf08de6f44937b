"""1:1 compare: are the largest faces of two photos the same person?"""

from __future__ import annotations

from facegate.errors import Unprocessable
from facegate.services.runtime import Runtime
from facegate.services.schemas import BoxPublic, CompareResult
from facegate.vision.engine import confidence, distance


def compare(rt: Runtime, image_a: bytes, image_b: bytes, *, threshold: float | None = None) -> CompareResult:
    info = rt.engine.info
    threshold = info.threshold if threshold is None else threshold
    limits = rt.settings.limits
    futures = {
        label: rt.engine.submit(data, max_pixels=limits.max_image_pixels, max_faces=1, crops=False, secondary="input")
        for label, data in (("image_a", image_a), ("image_b", image_b))
    }
    analyses = {label: rt.engine.wait(f) for label, f in futures.items()}
    for label, analysis in analyses.items():
        if not analysis.faces:
            raise Unprocessable(f"No face was found in {label}.", code="no_face")
    face_a, face_b = analyses["image_a"].faces[0], analyses["image_b"].faces[0]
    d = distance(info.metric, face_a.embedding, face_b.embedding)
    decided_by = info.name
    rule, secondary = info.fusion, info.secondary
    chips = [face_a.secondary_input, face_b.secondary_input]
    if rule is not None and secondary is not None and rule.unsure(d, threshold):
        inputs = [chip for chip in chips if chip is not None]
        if len(inputs) == 2:
            second_a, second_b = rt.engine.embed_secondary(inputs)
            d = rule.fused(d, distance(secondary.metric, second_a, second_b))
            decided_by = "fusion"
    return CompareResult(
        same=d <= threshold,
        distance=round(d, 4),
        confidence=round(confidence(d, threshold), 4),
        threshold=threshold,
        decided_by=decided_by,
        box_a=BoxPublic.of(face_a.box),
        box_b=BoxPublic.of(face_b.box),
    )
