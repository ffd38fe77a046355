"""Template tag libraries: `segment_pendo`."""
