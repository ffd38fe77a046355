"""segment-pendo's test kit: check, in a team's own pytest-playwright suite, what Pendo and Segment receive.

`def test_login(page, pendo): ...; pendo.expect_visitor("u-1", plan="pro")` is all a test needs; the
fixtures live in `generator.testing.plugin`, which pytest loads through the `pytest11` entry point.
"""
