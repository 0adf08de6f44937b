"""Benchmarks, measured the way a user would see them: a real `facegate serve` process driven over HTTP, the
`facegate enroll` command, and the `face_recognition` command line as the baseline on the same photos.

- Throughput: a seeded split of a labelled face set into a gallery (one photo of half the people) and probes
  (their other photos and every photo of the other, unknown people). The baseline runs
  `face_recognition --cpus N KNOWN_DIR UNKNOWN_DIR`; facegate enrolls the same gallery over HTTP, then identifies
  every probe with a few concurrent clients. Both sides are scored the same way (rank-1, identified at the
  operating threshold, false accepts of unknown people).
- Latency: sequential identify requests of one 640x480 JPEG with one face.
- Bulk enroll: the wall time of `facegate enroll <folder of people>` into a fresh data directory, with the
  engine start-up measured separately so that both rates can be given.

Nothing here asserts a timing; the figures go to a JSON report (`facegate bench --output`), and
`facegate bench-table` prints several reports side by side.
"""
