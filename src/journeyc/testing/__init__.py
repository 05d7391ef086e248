"""``journeyc test``: the tests of ``*.test.journey`` files, run on the simulator."""
