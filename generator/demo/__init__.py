"""The demo site's local stand-ins for Segment's and Pendo's servers, shared with the browser tests."""
