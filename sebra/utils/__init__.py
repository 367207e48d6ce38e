"""Small shared utilities that no stage owns: atomic files, picklable generators."""
