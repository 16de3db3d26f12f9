"""StoryHash study: robust video copy detection, reproduced and audited."""

__version__ = "0.1.0"
