"""`python -m fleet.lab.simulator CONFIG`: see fleet.lab.simulator.process."""

from fleet.lab.simulator.process import main

main()
