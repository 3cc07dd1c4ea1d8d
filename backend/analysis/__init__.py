"""Analysis: the thesis's measures (SCIENCE.md section 3) as pure functions over arrays."""
