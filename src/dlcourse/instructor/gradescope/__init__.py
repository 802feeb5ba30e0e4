"""Gradescope: grade a course assignment inside Gradescope's autograder container.

- ``bundle``: `dlcourse gradescope NN_name` builds ``autograder.zip`` on the instructor's machine
  (``setup.sh``, ``run_autograder``, the course wheel, the assignment's source with its hidden tests,
  the grading settings).
- ``run``: what ``run_autograder`` starts in the container, once per submission, as root: grades
  ``/autograder/submission/*.ipynb`` with the same engine as `dlcourse grade` and always writes
  ``/autograder/results/results.json``.
- ``results``: a grade result in Gradescope's results.json format (plain data in and out).
"""
