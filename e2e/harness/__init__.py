"""What the e2e scenarios and the demo share: the environment, the controller process, the sample app."""
