"""dlcourse.instructor: the instructor toolchain (authoring, grading, Gradescope, export,
similarity, report) and the course config and source format they share.

Students never import it: `dlcourse publish` leaves this folder out of the student course,
and the `dlcourse` command answers its instructor verbs with one line when it is missing.
The helpers notebooks import live one level up (``dlcourse.checks``, ``dlcourse.data``...).
"""
