@echo off
rem Runs Strom's zookeeper-server-start.exe (one folder up, in bin\) with the given arguments,
rem as Kafka's bin\windows\zookeeper-server-start.bat does. Example:
rem   bin\windows\zookeeper-server-start.bat config\zookeeper.properties
"%~dp0..\zookeeper-server-start.exe" %*
exit /b %ERRORLEVEL%
