"""Statistics: every number about deals and activities, in one package.

- formula.py: the weighted-value formula (SQL), the one place it is written;
- tallies.py: reads the deal and activity tallies the database keeps (triggers, migration 0010);
- deals.py: PipelineStats and the dashboard's deal rollup folded from the tallies;
- activities.py: the activity numbers (per status and type, and the counts that move with the clock);
- dashboard.py: the dashboard's panels for one owner scope;
- cache.py: the per-organisation stats cache and the session hooks that keep it fresh;
- units.py: the one money rounding and the one month/day/week arithmetic they share.
"""
