"""Models, enums and errors shared by every layer; imports nothing of ours."""
