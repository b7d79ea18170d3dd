"""Dates typed and shown in forms as ISO 8601 (2024-05-31), in every language: the help texts say so, and a
fiscal year's dates read the same to everyone. Everything else follows Django's own locale formats."""

DATE_INPUT_FORMATS = ["%Y-%m-%d"]
DATETIME_INPUT_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]
