Console.WriteLine("worker: not yet wired (see issue 4)");
return 0;
