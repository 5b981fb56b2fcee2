"""Pure-function libraries shared by the projects. Nothing here imports from `projects/`."""
