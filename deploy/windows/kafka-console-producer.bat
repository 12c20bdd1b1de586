@echo off
rem Runs Strom's kafka-console-producer.exe (one folder up, in bin\) with the given arguments,
rem as Kafka's bin\windows\kafka-console-producer.bat does. Example:
rem   bin\windows\kafka-console-producer.bat --bootstrap-server localhost:9092 --topic quickstart
"%~dp0..\kafka-console-producer.exe" %*
exit /b %ERRORLEVEL%
