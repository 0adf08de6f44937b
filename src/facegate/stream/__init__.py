"""Real-time video: sources, per-frame detection and tracking, one identity and one pair of events per track."""
