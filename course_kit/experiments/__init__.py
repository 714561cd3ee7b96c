"""Each lab's headline experiment: the composition of course_kit pieces that the lab's notebook
walks through and that ``course-kit run <lab> --json`` reports headless (one module per lab)."""
