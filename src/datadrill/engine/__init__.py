"""The machinery that runs drills: clocks and waiting (the runner lands here next)."""
