"""The key sync scenarios again, on PostgreSQL instead of SQLite (the same tests, another database)."""

from __future__ import annotations

import pytest
from conftest import Story
from test_caldav_sync import (  # noqa: F401  (collected here with this module's story fixture)
    test_appointments_booked_while_broken_wait_as_missed_then_arrive_after_relink,
    test_booked_appointment_appears_on_the_server_exactly_once,
    test_crash_after_put_before_commit_still_leaves_one_event,
    test_deleted_destination_calendar_marks_calendar_missing,
    test_external_delete_cancels_the_appointment,
    test_external_time_edit_is_applied_back_to_the_appointment,
    test_rerun_with_nothing_changed_writes_nothing_and_costs_at_most_two_requests,
    test_user_made_read_only_marks_read_only,
    test_weekly_recurring_busy_event_is_expanded,
)
from test_incidents import test_twenty_failed_runs_make_one_incident_and_one_notification  # noqa: F401 — collected again here, on PostgreSQL

pytestmark = pytest.mark.postgres


@pytest.fixture
def story(pg_rt, caldav):
    return Story(pg_rt, caldav)
