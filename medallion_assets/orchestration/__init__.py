"""Jobs, schedules, sensors, maintenance and rollback: what runs the layers."""
