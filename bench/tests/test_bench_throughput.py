"""Which faces the fused engine's second descriptor decided, read from identify answers: the bare engine repeats
exactly that work."""

from __future__ import annotations

from pathlib import Path

from facegate_bench.split import Probe
from facegate_bench.throughput import fused_faces


def test_fused_faces_by_position_largest_first() -> None:
    probes = [Probe(Path(f"/p/{n}.jpg"), "ann", True) for n in (1, 2, 3)]
    bodies = [
        {"faces": [{"decided_by": "fusion"}, {"decided_by": "opencv"}, {"decided_by": "fusion"}]},
        {"faces": [{"decided_by": "opencv"}]},
        {"faces": []},
    ]
    assert fused_faces(probes, bodies) == {"ann__1.jpg": [0, 2]}
