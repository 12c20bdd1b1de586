@echo off
rem Runs Strom's kafka-server-start.exe (one folder up, in bin\) with the given arguments,
rem as Kafka's bin\windows\kafka-server-start.bat does. Example:
rem   bin\windows\kafka-server-start.bat config\server.properties
"%~dp0..\kafka-server-start.exe" %*
exit /b %ERRORLEVEL%
