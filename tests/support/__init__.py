"""Code the test tiers share (no tests here)."""
