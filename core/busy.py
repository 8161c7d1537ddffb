"""What blocks a staff member's time: the policy, one case at a time, in the words the feed entry shows.

Every occurrence of an external event (after recurrence expansion, core.ics) either blocks time or
not, for the first of these reasons that applies:

1. ``STATUS:CANCELLED`` (RFC 5545 §3.8.1.11; an override can cancel one occurrence) — free, "cancelled".
2. The staff member declined the invitation — free. Read from their own ``ATTENDEE`` (its address is
   the connection's account or the staff member's e-mail) with ``PARTSTAT=DECLINED`` (RFC 5545
   §3.2.12), or from what the provider says of its owner: Google's ``attendees[].self`` with
   ``responseStatus: declined``, Graph's ``responseStatus.response: declined``, both carried into the
   event as ``X-CALSYNC-RESPONSE`` by the providers.
3. ``TRANSP:TRANSPARENT`` (RFC 5545 §3.8.2.7), Google ``transparency: transparent``, Graph ``showAs``
   ``free`` — free, "marked free/available"; Graph ``showAs: workingElsewhere`` (Outlook's
   ``X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE``) is free too: the person is working, elsewhere.
4. An all-day event while ``CALSYNC_ALL_DAY_POLICY=ignore`` — free, "all-day event ignored by policy".
5. Everything else blocks. A tentative event (``STATUS:TENTATIVE``), a tentative or not yet answered
   invitation, Graph ``showAs`` ``tentative``, ``oof`` or ``unknown``: busy, and the entry says which
   — a tentative hold is still a hold, and booking over it is the double booking this prevents.

Floating times are read in the staff member's zone, and an event that spans the sync window's
edges blocks all of its time (core.ics).
"""

from __future__ import annotations

RESPONSE_PROP = "X-CALSYNC-RESPONSE"  # the calendar owner's answer, as the provider reported it
OUTLOOK_STATUS_PROP = "X-MICROSOFT-CDO-BUSYSTATUS"  # Outlook's own free/busy status (Graph showAs)

INFO_CANCELLED = "cancelled"
INFO_DECLINED = "declined by its owner: the invitation was answered no"
INFO_FREE = "marked free/available"
INFO_ELSEWHERE = "working elsewhere: counted as available"
INFO_ALL_DAY = "all-day event ignored by policy"

# What the providers' own words for the owner's answer are in iCalendar's (RFC 5545 §3.2.12).
GOOGLE_RESPONSES = {"declined": "DECLINED", "tentative": "TENTATIVE", "needsAction": "NEEDS-ACTION", "accepted": "ACCEPTED"}
GRAPH_RESPONSES = {"declined": "DECLINED", "tentativelyAccepted": "TENTATIVE", "notResponded": "NEEDS-ACTION", "accepted": "ACCEPTED"}
GRAPH_SHOW_AS = {"free": "FREE", "tentative": "TENTATIVE", "busy": "BUSY", "oof": "OOF", "workingElsewhere": "WORKINGELSEWHERE"}
FREE_SHOW_AS = ("FREE", "WORKINGELSEWHERE")


def address(value) -> str:
    """An ATTENDEE's address as compared: without ``mailto:``, in lower case."""
    text = str(value or "").strip()
    if text[:7].lower() == "mailto:":
        text = text[7:]
    return text.strip().lower()


def owners(*candidates: str | None) -> frozenset[str]:
    """The addresses that are the staff member themselves: the connection's account (when it is an
    e-mail address) and the staff member's e-mail."""
    return frozenset(a for a in (address(c) for c in candidates) if "@" in a)


def owner_answer(event, me: frozenset[str]) -> str:
    """The owner's answer to the invitation (``PARTSTAT``), '' when they are not invited (their own event)."""
    said = str(event.get(RESPONSE_PROP, "") or "").strip().upper()
    if said:
        return said
    attendees = event.get("ATTENDEE")
    if attendees is None or not me:
        return ""
    for attendee in attendees if isinstance(attendees, list) else [attendees]:
        if address(attendee) in me:
            params = getattr(attendee, "params", {})
            return str(params.get("PARTSTAT", "NEEDS-ACTION") or "NEEDS-ACTION").upper()
    return ""


def decide(event, me: frozenset[str], *, all_day: bool, all_day_policy: str) -> tuple[bool, str]:
    """Whether the occurrence blocks time, and why not ('' when it blocks) or what kind of busy it is
    (``'tentative'``…, shown before the entry's "last updated")."""
    status = str(event.get("STATUS", "") or "").upper()
    if status == "CANCELLED":
        return False, INFO_CANCELLED
    answer = owner_answer(event, me)
    if answer == "DECLINED":
        return False, INFO_DECLINED
    outlook = str(event.get(OUTLOOK_STATUS_PROP, "") or "").upper()
    if outlook == "WORKINGELSEWHERE":
        return False, INFO_ELSEWHERE
    if str(event.get("TRANSP", "") or "").upper() == "TRANSPARENT" or outlook == "FREE":
        return False, INFO_FREE
    if all_day and all_day_policy == "ignore":
        return False, INFO_ALL_DAY
    kinds = []
    if status == "TENTATIVE" or outlook == "TENTATIVE":
        kinds.append("tentative, counted as busy")
    if answer == "TENTATIVE":
        kinds.append("accepted tentatively, counted as busy")
    elif answer == "NEEDS-ACTION":
        kinds.append("invitation not answered yet, counted as busy")
    if outlook == "OOF":
        kinds.append("out of office")
    return True, "; ".join(kinds)
