"""The relay: Segment-spec track events in over HTTP, Pendo Track Events API requests out, nothing lost."""
