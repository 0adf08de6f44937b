"""facegate's benchmark harness: not part of the product package (it lives in bench/, with its own
requirements). It measures facegate the way a user meets it: a real `facegate serve` process driven over HTTP,
the `facegate enroll` command, and two references on the same photos: the bare engine (the ceiling) and the
`face_recognition` command line (the baseline).

- Throughput: a seeded split of a labelled face set into a gallery (one photo of half the people) and probes
  (their other photos and every photo of the other, unknown people). The baseline runs
  `face_recognition --cpus N KNOWN_DIR UNKNOWN_DIR` once; then, for each engine, facegate enrolls the same
  gallery over HTTP and identifies every probe with 2 concurrent clients, and the bare engine does the
  service's per-photo work on the same probes in N single-threaded processes. Both tools are scored the same
  way (rank-1, identified at the operating threshold, false accepts of unknown people).
- Latency: sequential identify requests of one 640x480 JPEG with one face.
- Bulk enroll: the wall time of `facegate enroll <folder of people>` into a fresh data directory, with the
  engine start-up measured separately so that both rates can be given.

Nothing here asserts a timing; the figures go to JSON reports (`python -m facegate_bench run --output-dir`), and
`python -m facegate_bench table` prints several side by side.
"""
