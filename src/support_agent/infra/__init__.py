"""Infrastructure: embedded servers and connection factories."""
