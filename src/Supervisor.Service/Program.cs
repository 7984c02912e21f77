using Supervisor.Configuration;
using Supervisor.Hosting;

return await SupervisorProgram.RunAsync(args);
