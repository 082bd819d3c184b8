Console.WriteLine("orchestrator");
