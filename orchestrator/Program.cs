return await Training.Orchestrator.Cli.Commands.RunAsync(args);
