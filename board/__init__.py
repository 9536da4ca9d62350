"""Board support: per-board notes and configuration, and the tooling that
talks to a board (serial console, flashing, deployment)."""
