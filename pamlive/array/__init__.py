"""The hydrophone array as an array: time differences of arrival, bearings, channel
agreement (see ``docs/array.md``)."""
