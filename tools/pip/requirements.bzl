"""requirement() of the offline @pip stand-in that WORKSPACE declares.

tools/gen_build.py writes WORKSPACE with one empty py_library per pip
requirement of setup.cfg; requirement() names it the way rules_python's
pip_parse does, so BUILD reads the same with either.
"""

def requirement(name):
    """Returns the label of the pip package `name` (e.g. "absl-py")."""
    return "@pip//:" + name.lower().replace("-", "_").replace(".", "_")
